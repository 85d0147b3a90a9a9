"""`stockade audit`, sans-I/O: findings, grading rules and report rendering."""
