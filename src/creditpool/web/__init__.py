"""The web pages: server-rendered, for instructors, members and the operator."""
