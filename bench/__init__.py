"""`python -m bench`: the real engine, storage and provider clients against the loopback fake provider.

Each figure is one JSON line on stdout; the exit status is 1 when any figure misses its target.
"""
