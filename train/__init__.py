"""Training programs: data, the shared loop, entry points for the bigram and the GPT, sampling and chat."""

import tensorlite  # noqa: F401,E402 (first, so that NumPy loads OpenBLAS with tensorlite's settings: see backend)
