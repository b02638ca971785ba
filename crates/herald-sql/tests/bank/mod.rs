//! The bank account of the event-sourcing reference: deposits, withdrawals, and a
//! rejected withdrawal when funds are insufficient.
#![allow(dead_code, unreachable_pub)] // why: each test binary uses a different subset

use herald_sql::Aggregate;
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub owner: Option<String>,
    pub balance_cents: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AccountEvent {
    Opened { owner: String },
    MoneyDeposited { amount_cents: u64 },
    MoneyWithdrawn { amount_cents: u64 },
}

#[derive(Debug, Clone)]
pub enum AccountCommand {
    Open { owner: String },
    Deposit { amount_cents: u64 },
    Withdraw { amount_cents: u64 },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BankError {
    #[error("the account is not open")]
    NotOpen,
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("amounts must be positive")]
    NotPositive,
    #[error("insufficient funds: balance {balance_cents}, requested {requested_cents}")]
    InsufficientFunds {
        balance_cents: u64,
        requested_cents: u64,
    },
}

impl Aggregate for Account {
    const CATEGORY: &'static str = "account";
    type Event = AccountEvent;
    type Command = AccountCommand;
    type Error = BankError;

    fn event_type(event: &AccountEvent) -> &'static str {
        match event {
            AccountEvent::Opened { .. } => "bank.account_opened",
            AccountEvent::MoneyDeposited { .. } => "bank.money_deposited",
            AccountEvent::MoneyWithdrawn { .. } => "bank.money_withdrawn",
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { owner } => self.owner = Some(owner.clone()),
            AccountEvent::MoneyDeposited { amount_cents } => self.balance_cents += amount_cents,
            AccountEvent::MoneyWithdrawn { amount_cents } => self.balance_cents -= amount_cents,
        }
    }

    fn handle(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, BankError> {
        let open = self.owner.is_some();
        match command {
            AccountCommand::Open { .. } if open => Err(BankError::AlreadyOpen),
            AccountCommand::Open { owner } => Ok(vec![AccountEvent::Opened {
                owner: owner.clone(),
            }]),
            _ if !open => Err(BankError::NotOpen),
            AccountCommand::Deposit { amount_cents: 0 }
            | AccountCommand::Withdraw { amount_cents: 0 } => Err(BankError::NotPositive),
            AccountCommand::Deposit { amount_cents } => Ok(vec![AccountEvent::MoneyDeposited {
                amount_cents: *amount_cents,
            }]),
            AccountCommand::Withdraw { amount_cents } if *amount_cents > self.balance_cents => {
                Err(BankError::InsufficientFunds {
                    balance_cents: self.balance_cents,
                    requested_cents: *amount_cents,
                })
            }
            AccountCommand::Withdraw { amount_cents } => Ok(vec![AccountEvent::MoneyWithdrawn {
                amount_cents: *amount_cents,
            }]),
        }
    }
}
