"""Experiments about the method: the learning curve (:mod:`earth_lib.experiments.curve`)."""
