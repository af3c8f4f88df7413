"""`neurofx study`: training the encoder, actor and critic from collected trajectories.

Modules: :mod:`.targets` (what is learnt), :mod:`.data` (store loading, split, the seed's
sub-sequence sampling), :mod:`.loop` (the shared training loop), :mod:`.files` (log,
checkpoints, plots), :mod:`.encoder` and :mod:`.actor` (the two stages), :mod:`.compare`
(optimizer comparison). See docs/study.md.
"""
