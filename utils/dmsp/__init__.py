"""DMSP (deep mean-shift priors): the solver (solver.py) and its restoration front end for restore_dmsp.py and
infer.py --dmsp-task (restore.py)."""
