"""Data that ships with labkit: the build installs this folder as the package `labkit.data`."""
