"""The benchmark environments: each module builds one family of ToolEnv ids from its tasks, tools and metrics."""
