"""Analyses of a fitted model as functions: arrays and :class:`~zconf.glm.RegressionData` in, tables out."""
