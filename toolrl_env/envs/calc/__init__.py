"""Calc: generated calculator and unit-conversion tasks (`tasks`) and ToolEnv-Calc-v0 (`env`)."""
