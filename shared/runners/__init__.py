"""Core's side of the runner plane: enrollment, the registry of runners, jobs and the denylist."""
