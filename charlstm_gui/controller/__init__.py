"""The app's state and rules, without widgets: the state machine (``state``) and the controller
that follows it (``controller``), and the services it holds: worker threads (``tasks``), files,
generation, the plan, runs, sweeps and sweep jobs; plus the loss history and the settings check.
"""
