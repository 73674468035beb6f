"""Operations: the `aisopsflow` command, the process supervisor, and later backup and runners."""
