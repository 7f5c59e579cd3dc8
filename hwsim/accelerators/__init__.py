"""The machines hwsim models, one subpackage per target (see ``hwsim.targets``)."""
