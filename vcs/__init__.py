"""The forge interface: GitHub via PyGithub, GitLab via python-gitlab, and an in-memory one for tests."""
