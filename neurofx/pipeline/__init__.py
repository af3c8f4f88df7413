"""The pipeline's steps, one module each: :mod:`.research` (collect trajectories),
:mod:`.study` (train the agent's models), :mod:`.test` (replay a test period and report) and
:mod:`.report` (regenerate or compare reports).

Each step takes the typed :class:`~neurofx.config.Config` (plus what names the run) and returns
a result object; it prints nothing. ``neurofx.commands`` parses arguments into those settings
and prints the results. Steps may import every layer below them (config, data, strategies,
collectors, study, reports, agents, nn); nothing below imports a step.
"""
