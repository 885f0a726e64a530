"""Proxy-GRM: the logic behind the scripts in proxy/, eval/, data_prep/, scripts/ and verl/."""
