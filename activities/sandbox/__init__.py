"""The sandbox: a commit's tests under isolation, on the forgeflow-sandbox task queue."""
