"""The ground floor of the rule families: what more than one family needs, written once.

Import from the modules themselves (``bpfree.rules.common.losses``, ...): this package imports
nothing, so that ``bpfree.rules.base`` can stand on it.

- ``options``: options declared on a rule class, checked with one wording;
- ``buffers``: gradient buffers kept between steps, lists of feedback buffers;
- ``streams``: seeded random streams whose position is rule state;
- ``init``: how feedback tensors are drawn;
- ``activations``: σ, its in-place form and σ′, for rules without autograd;
- ``losses``: one-hot targets and the softmax cross-entropy's error e = softmax(z) − t;
- ``alignment``: angles and norm ratios between feedback and what it stands for;
- ``mirror``: weight mirroring's step and schedule;
- ``layer_math``: forward, input and weight gradients of Linear and Conv2d, written once;
- ``probe``: output shapes read by one pass that changes nothing;
- ``directional``: forward-mode directional derivatives (forward gradients, GrAPE);
- ``walk``: a model walked layer by layer without autograd (the forward-only rules, FF).
"""
