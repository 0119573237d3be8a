"""The installer's commands: ``smartshelf doctor``, ``smartshelf firstboot``, ``smartshelf update``.

They sit above both rooms (first boot creates the admin account; doctor checks the camera, models
and the admin's data), so only the CLI imports them."""
