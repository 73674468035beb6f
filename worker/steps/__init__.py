"""One executor per step type: run the step once and return its Outcome, or raise StepFailure."""
