"""Reusable pieces the views are built from: spin boxes, the coloured passage, axes, dialogs, file
dialogs, tooltips, formatters and the recent-files menus.
"""
