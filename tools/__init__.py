"""Development tools: never packed into the wheel that ships to a shelf (see docs/development.md)."""
