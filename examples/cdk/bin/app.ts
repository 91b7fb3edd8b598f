#!/usr/bin/env node
// Context (cdk.json or -c name=value):
//   serviceTokenExport  the provider stack's export to import
//                       (default "resource-policy-provider-LiveServiceToken", the alias)
//   readerAccountId     the account granted read access (default 111122223333)
import { App, CliCredentialsStackSynthesizer } from 'aws-cdk-lib';
import { serviceTokenFromExport } from '../lib/resource-policy';
import { SharedStatementsStack, TablePolicyStack } from '../lib/stacks';

// analyticsReporting off: no AWS::CDK::Metadata resource in the templates.
const app = new App({ analyticsReporting: false });
const exportName: string = app.node.tryGetContext('serviceTokenExport') ?? 'resource-policy-provider-LiveServiceToken';
const readerAccountId: string = app.node.tryGetContext('readerAccountId') ?? '111122223333';

// These stacks have no assets (no Lambda code, no files), so they need no CDK
// bootstrap: the CLI-credentials synthesizer deploys them with your own credentials.
const synthesizer = () => new CliCredentialsStackSynthesizer();

const props = { serviceToken: serviceTokenFromExport(exportName), readerAccountId };
new TablePolicyStack(app, 'ResourcePolicyCdkTable', { ...props, synthesizer: synthesizer() });
new SharedStatementsStack(app, 'ResourcePolicyCdkShared', { ...props, synthesizer: synthesizer() });
app.synth();
