"""Helpers the test modules share: accounts, the error shape, marketplace steps, races. Test modules import these,
never each other."""
