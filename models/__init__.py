"""Models built only from tensorlite.nn layers."""
