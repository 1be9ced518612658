# The assignment notebooks are exercises: run as they are committed, with blank stubs, their check cells
# must FAIL (that is what a student sees first). So the repository's nbval run skips them, and
# tests/test_assignment_notebooks.py runs each one twice instead: blank (the check must fail, kindly)
# and with the reference solution pasted into its stub cell (every cell must pass).
collect_ignore_glob = ["*.ipynb"]
