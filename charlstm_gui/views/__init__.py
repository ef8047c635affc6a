"""One module per tab or dock of the window: text, plot, samples, generate, inspect, runs, the
settings form, the status bar and the sweep dialog;
``reports`` routes the controller's reports to them.
"""
