"""Local forge test servers: GitHub and GitLab REST shapes served over real HTTP on 127.0.0.1."""
