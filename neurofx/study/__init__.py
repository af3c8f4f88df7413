"""`neurofx study`: training the encoder, actor and critic from collected trajectories, and
seed 002's recurrent-autoencoder recall study.

Modules: :mod:`.settings` (what a run depends on), :mod:`.stage` (the stage interface, the
trajectory stages' base and the optimizer factory), :mod:`.trainer` (the one training loop:
validation, checkpoints, resume, early stopping, log, Ctrl-C), :mod:`.losses`, :mod:`.targets`
(what is learnt), :mod:`.data` (store loading, split, the seed's sub-sequence sampling),
:mod:`.files` (log, checkpoints, plots), the stages :mod:`.encoder`, :mod:`.actor` and
:mod:`.autoencoder`, and :mod:`.compare` (optimizer comparison). See docs/study.md.
"""
