"""Student/expert generation schemes: the schedules, the per-rollout plan, the hand-over, the loop's protocol."""
