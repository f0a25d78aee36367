"""What a run needs around the learning: its folder and checkpoints (`run_folder`), several processes
(`distributed`), memory hygiene (`memory`)."""
