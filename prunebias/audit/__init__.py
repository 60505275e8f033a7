"""The audit's design: contexts and names in, prompts out (``contexts``, ``names``, ``prompts``,
``prompt_table``); model answers in, usable numbers out (``parsing``, ``answers``)."""
