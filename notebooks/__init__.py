"""The lessons: the build installs this folder as the package `labkit.notebooks`."""
