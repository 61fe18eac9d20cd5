"""Notebook surfaces: magics, cell output, live-namespace tools, the widget panel."""
