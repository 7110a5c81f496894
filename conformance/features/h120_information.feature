Feature: 02 Information retrieval (H-120 to H-149)
  The ITL and the registries show what they hold: Parties, accounts, the register,
  transactions and their status.

  @H-121
  Scenario: The ITL lists the Parties with their standing
    When the operator asks ITL for /parties
    Then the answer has HTTP status 200
    And the answer lists "KZ"

  @H-122
  Scenario: A registry lists its government accounts
    When the operator asks KZ for /accounts
    Then the answer has HTTP status 200
    And the answer lists "PARTY_HOLDING"
    And the answer lists "RETIREMENT"

  @H-123
  Scenario: A registry publishes the DES response codes it uses
    When the operator asks KZ for /codes/response
    Then the answer has HTTP status 200
    And the answer lists "3002"

  @H-124
  Scenario: The ITL's register and a registry's books agree after a transaction
    Given a person holding account "Alice" in KZ
    And KZ holds at least 1 000 AAU of period 2 in its Party holding account
    When "KZ Party holding account" transfers 250 AAU of period 2 to "Alice"
    Then the ITL records the transaction as COMPLETED
    And the ITL's register shows 250 AAU in "Alice"
    And the ITL's register agrees with the books of KZ

  @H-125
  Scenario: An unknown transaction is answered with 404
    When the operator asks KZ for /transactions/KZ999999999
    Then the request is refused with HTTP 404

  @H-126
  Scenario: The ITL publishes the wire's AsyncAPI document to anyone
    When the anonymous caller asks ITL for /asyncapi.json
    Then the answer has HTTP status 200
    And the answer lists "ProposalSubmitted"
