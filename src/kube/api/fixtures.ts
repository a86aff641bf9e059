/**
 * The shape of an API type's fixtures: specs that must be accepted or refused, judged twice — by
 * our validator (unit tests) and by the testbed's API server with the generated CRD
 * (`test/integration/crd-validation.test.ts`).
 */

export interface ValidFixture {
  readonly name: string;
  readonly spec: Record<string, unknown>;
}

export interface InvalidFixture {
  readonly name: string;
  readonly spec: Record<string, unknown>;
  /** The field the error is about, as the API server writes it. */
  readonly field: string;
  /** What the message must say about the rule (both the API server's and ours). */
  readonly rule: RegExp;
}
