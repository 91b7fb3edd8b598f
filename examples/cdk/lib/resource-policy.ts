// A thin typed wrapper over CustomResource for resource-policy-provider.
// Everything it sends is what a CloudFormation template would send: the provider
// sees a Custom::ResourcePolicy with ResourceArn and Policy, or ResourceArn and
// Statements (each with a Sid). No Lambda, no Provider framework: the provider is
// already deployed, and its ServiceToken is imported from its stack's export.
import { CustomResource, Duration, Fn, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/** The export to import, e.g. "resource-policy-provider-LiveServiceToken". */
export function serviceTokenFromExport(exportName: string): string {
  return Fn.importValue(exportName);
}

export interface ResourcePolicyProps {
  /** The provider's ServiceToken (Fn.importValue of its export, or the function or alias ARN). */
  readonly serviceToken: string;
  /** Table, stream, stream consumer, workspace or SSM parameter ARN. */
  readonly resourceArn: string;
  /** The whole policy document: this resource owns the target's policy. */
  readonly policy?: iam.PolicyDocument;
  /** Statements (each with a Sid) this resource owns inside a shared policy. */
  readonly statements?: iam.PolicyStatement[];
  /** CloudFormation's ServiceTimeout; the provider also bounds its work with it. */
  readonly serviceTimeout?: Duration;
}

export class ResourcePolicy extends Construct {
  readonly resource: CustomResource;

  constructor(scope: Construct, id: string, props: ResourcePolicyProps) {
    super(scope, id);
    if ((props.policy === undefined) === (props.statements === undefined)) {
      throw new Error(`${id}: give exactly one of policy and statements`);
    }
    const properties: Record<string, unknown> = { ResourceArn: props.resourceArn };
    if (props.policy) {
      properties.Policy = props.policy.toJSON();
    } else {
      const statements = props.statements!.map((s) => s.toStatementJson());
      const missing = statements.filter((s) => !s.Sid).length;
      if (missing > 0) throw new Error(`${id}: every statement needs a sid (${missing} without one)`);
      properties.Statements = statements;
    }
    this.resource = new CustomResource(this, 'Resource', {
      serviceToken: props.serviceToken,
      resourceType: 'Custom::ResourcePolicy',
      serviceTimeout: props.serviceTimeout,
      properties,
    });
  }

  /** The revision the service reports (DynamoDB, X-Ray, Managed Prometheus). */
  get revisionId(): string {
    return this.resource.getAttString('RevisionId');
  }

  /** The Sids this resource owns (Statements only), comma-separated. */
  get sids(): string {
    return this.resource.getAttString('Sids');
  }
}

/** An account's root principal in the stack's partition. */
export function accountRoot(stack: Stack, accountId: string): iam.ArnPrincipal {
  return new iam.ArnPrincipal(`arn:${stack.partition}:iam::${accountId}:root`);
}
