"""The daemon around the engine: command line, configuration, main loop, hooks, output."""
