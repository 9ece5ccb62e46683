"""Result nodes of each method, built in an MRML scene."""
