"""Built-in trainers (installed as ``harness.trainers``)."""
