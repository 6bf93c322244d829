"""The code hosts: where the code lives (local git, GitHub), behind one protocol."""
