"""The search: the explainers' search space, the objective a trial runs, the fair trial budget, the samplers and
pruners, inert tunables, the study itself, and the phase and interrupt hooks a caller may listen to."""
