"""The ``hwsim`` command line. It only parses, calls the API and writes."""
