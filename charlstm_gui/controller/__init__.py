"""The app's state and rules, without widgets: the state machine (``controller``), its parts for
files, generation, runs and tasks, the loss history and the settings check.
"""
