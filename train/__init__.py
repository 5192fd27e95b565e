"""Training programs: data, the shared loop, entry points for the bigram and the GPT, sampling and chat."""
