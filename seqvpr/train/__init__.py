"""Training: DecDTW sequence fine-tuning, single-image base training, and the run machinery
they share (:mod:`seqvpr.train.run`)."""
