"""Role plugins: what a node does for each role flag (DESIGN.md section 1)."""
