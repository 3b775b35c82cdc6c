import queries.proposals as qp
qp.may_see = lambda row, viewer_id, viewer_role: True  # mutant: everyone sees every proposal
from tests.api.test_marketplace_state_machine import Marketplace
from hypothesis import settings
Marketplace.TestCase.settings = settings(Marketplace.TestCase.settings, max_examples=10, database=None)
TestMutant = Marketplace.TestCase
