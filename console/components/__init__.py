"""Rendering shared by the console's views: traces, the review pane, messages and formats."""
