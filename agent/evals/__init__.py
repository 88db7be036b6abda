"""Continuous evaluation: suites as code, run through the real run loop in a sandbox, and the
activation gate bound to the exact version that passed."""
