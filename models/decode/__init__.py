"""A decode path for CharLSTM built for serving: many independent streams stepped as one batch.

`models.sample.generate` runs the nn.Module one character at a time; at batch 1-32 on a CPU most of its
time is Python and dispatcher overhead, not arithmetic. Here the weights are rearranged once and a batch
steps every active stream with a fixed, short list of in-place torch ops into buffers allocated once per
batch capacity:

    layer 0   gates = T[id] + h_0 @ W_hh^T        T = embedding @ W_ih^T + b (precomputed, V x 4H)
    layer l   gates = [h_{l-1}, h_l] @ W_cat^T + b     W_cat = [W_ih | W_hh]: one matmul per layer
    cell      gate rows reordered to (i, f, o, g), so one sigmoid covers i, f and o
    head      logits = h_{L-1} @ W_head^T + b

One job per module, in the order a step meets them:

    stream.py      `Stream`: one request (seed text, length, random seed, sampling settings, penalties,
                   logprobs), validated
    state.py       `StartState` and `Clamp`: a state kept between requests (a session's), joined instead
                   of a seed text, and the cell units held on it
    fused.py       `FusedCharLSTM`: the rearranged weights, priming a seed text (or feeding one on from a
                   state), `advance` (the LSTM step)
    logprobs.py    `RawLogprobs`: the raw log-probabilities of the rows that ask, read before the step
    processors.py  `process`: the penalties and n-gram ban on the logits, before the sampler (shared by
                   both steps); `History`/`record`: each row's window and n-grams
    sampler.py     `sample`: the next ids from the logits, the one sampler of the project (its rule is there)
    buffers.py     `BatchBuffers`: the row table and scratch; `StepBuffers`: the views one step of n rows
                   touches, the typed structure the native step reads
    slots.py       `SlotTable`: which stream holds which slot and row; `PrefixCache`: primed seed texts
    batch.py       `DecodeBatch` (add, step, remove) tying them together, and `decode` (a list of streams)

On CPU the step runs natively when `models.native` has been built (`python -m models.native`; `./run`
does it): `decode_step.cpp` calls the same ATen ops in the same order on the same buffers, with the GIL
released for the whole step, so texts are bitwise the same and the GIL is free for the event loop.

Randomness is `models.sample.generate`'s, stream by stream: a generator seeded with `random_seed`
draws the start character of an empty seed text, then `length` uniforms up front, and character t is
the inverse CDF at uniform t of the same sorted, filtered distribution (`sampler.sample`, which both
run). A stream's text therefore equals `generate(...).text` and does not depend on its batch
neighbours, except where float rounding (fused vs nn.LSTM matmuls, batched vs single-row products)
flips a near-tie: a greedy near-tie, or a uniform within ~1e-7 of a bucket edge.
"""
