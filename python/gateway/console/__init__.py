"""The operators' console: server-rendered pages at /console on the HTTP front door, signed in with an admin or
team-admin key. It reads and changes through the Admin and Insights operations the gRPC services use, so scoping
(a team admin sees only their team) and validation are the same code."""
