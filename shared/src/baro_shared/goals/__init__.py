"""Reading a goal as people write it: its text, named units, ordered steps and their files.

Pure functions of the goal string (and, for write surfaces, the repository's file list),
shared by the intake (which mode to propose) and the planner (which stories to make), so
the two read a goal the same way.
"""
