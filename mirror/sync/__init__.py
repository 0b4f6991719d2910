"""The sync: a pure planner (inputs in, actions out) and the code that carries actions out."""
