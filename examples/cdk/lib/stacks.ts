import { CfnOutput, Duration, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { ResourcePolicy, accountRoot } from './resource-policy';

export interface ExampleProps extends StackProps {
  /** The provider's ServiceToken, e.g. Fn.importValue('resource-policy-provider-LiveServiceToken'). */
  readonly serviceToken: string;
  /** The account granted read access (12 digits). */
  readonly readerAccountId: string;
}

/** One table, one whole policy: the stack owns the table's policy document. */
export class TablePolicyStack extends Stack {
  constructor(scope: Construct, id: string, props: ExampleProps) {
    super(scope, id, props);
    const table = new dynamodb.Table(this, 'Orders', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const policy = new ResourcePolicy(this, 'OrdersPolicy', {
      serviceToken: props.serviceToken,
      resourceArn: table.tableArn,
      serviceTimeout: Duration.minutes(5),
      policy: new iam.PolicyDocument({
        statements: [
          new iam.PolicyStatement({
            sid: 'ReaderGetItem',
            principals: [accountRoot(this, props.readerAccountId)],
            actions: ['dynamodb:GetItem', 'dynamodb:Query'],
            resources: [table.tableArn],
          }),
        ],
      }),
    });
    new CfnOutput(this, 'TableArn', { value: table.tableArn });
    new CfnOutput(this, 'PolicyRevisionId', { value: policy.revisionId });
  }
}

/**
 * Shared statements: two owners each hold their own statement (by Sid) in one
 * table's policy. In real use they would usually live in different stacks or apps;
 * deleting one owner removes only its statement.
 */
export class SharedStatementsStack extends Stack {
  constructor(scope: Construct, id: string, props: ExampleProps) {
    super(scope, id, props);
    const table = new dynamodb.Table(this, 'Events', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const owner = new ResourcePolicy(this, 'OwnerStatements', {
      serviceToken: props.serviceToken,
      resourceArn: table.tableArn,
      statements: [
        new iam.PolicyStatement({
          sid: 'OwnerReadWrite',
          principals: [accountRoot(this, this.account)],
          actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'],
          resources: [table.tableArn],
        }),
      ],
    });
    const analytics = new ResourcePolicy(this, 'AnalyticsStatements', {
      serviceToken: props.serviceToken,
      resourceArn: table.tableArn,
      statements: [
        new iam.PolicyStatement({
          sid: 'AnalyticsRead',
          principals: [accountRoot(this, props.readerAccountId)],
          actions: ['dynamodb:GetItem', 'dynamodb:Query'],
          resources: [table.tableArn],
        }),
      ],
    });
    new CfnOutput(this, 'TableArn', { value: table.tableArn });
    new CfnOutput(this, 'OwnerSids', { value: owner.sids });
    new CfnOutput(this, 'AnalyticsSids', { value: analytics.sids });
  }
}
