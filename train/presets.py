"""The GPT presets of train.gpt, as data: each value with the reason it has that value.

Every key is a field of train.gpt.GPTTrainConfig (a test checks it); flags given on the command line
override these, and `--preset auto` takes 'course' on a CUDA GPU and 'cpu' otherwise. The benchmarks
measure at these sizes, so a speed number is the speed of a model these programs train.
"""

# The course's GPT, for a GPU: its sizes and its optimiser settings, unchanged.
COURSE = dict(
    batch_size=128,      # the course's batch: on a GPU the step time barely grows with it
    block_size=64,       # the course's context length
    n_embd=384,          # the course's width: 48 channels per head with 8 heads
    n_layer=8,           # the course's depth
    n_head=8,            # divides n_embd (384 / 8 = 48 channels a head)
    dropout=0.2,         # the course's regularisation: 14M parameters would memorise one book without it
    learning_rate=3e-4,  # the course's rate: Adam's customary 3e-4, stable here without warmup
    max_iters=3000,      # the course's run length
    eval_interval=100,   # frequent evaluations are cheap next to a GPU's steps
    eval_iters=100,      # half the loop's default: evaluation stays a small part of the run
    weight_decay=0.01,   # AdamW's customary default (PyTorch's)
    beta2=0.999,         # Adam's default
    grad_clip=0.0,       # the course does not clip
    warmup_iters=0,      # nor warm up,
    lr_decay=False,      # nor decay the learning rate
)

# A GPT sized for two CPU cores: a validation loss below 1.65 on Sherlock Holmes in about 10 minutes.
CPU = dict(
    batch_size=32,       # a quarter of the course's batch: a step takes ~0.1 s on two cores
    block_size=64,       # the course's context: the model still sees whole sentences
    n_embd=128,          # a third of the course's width: matrix products dominate the step
    n_layer=4,           # half the depth
    n_head=4,            # divides n_embd (128 / 4 = 32 channels a head)
    dropout=0.0,         # the model is too small and the run too short to overfit the book
    learning_rate=2e-3,  # a small model takes a higher rate; warmup and clipping keep it stable
    max_iters=4000,      # 7-9 minutes on two cores, and the loss still falls at the end
    eval_interval=250,   # evaluations cost steps on a CPU: 16 of them in a run
    eval_iters=20,       # a few batches: enough to see progress, cheap on a CPU
    weight_decay=0.1,    # nanoGPT's value with a higher rate: keeps the matrices small
    beta2=0.99,          # a shorter memory of squared gradients suits a short run with a high rate
    grad_clip=1.0,       # bounds the rare large step a high rate would otherwise take
    warmup_iters=100,    # Adam's moment estimates settle before the full rate applies
    lr_decay=True,       # cosine to learning_rate / 10: the last steps refine instead of bouncing
)

PRESETS = {"course": COURSE, "cpu": CPU}
